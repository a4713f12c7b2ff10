"""Inference: classify uploaded photos with a trained model or torchvision's ImageNet weights."""

import streamlit as st

from resnet_explorer.common import IMAGE_UPLOAD
from resnet_explorer.inference import MAX_FILES, results_csv
from ui import access
from ui import inference_view as view
from ui import nav

st.title("Inference")
predictor, model_key = view.pick_model()

left, right = st.columns([3, 1])
cap = access.classify_cap()
files = left.file_uploader(
    f"Images (JPEG, PNG, WebP, GIF, BMP, TIFF; up to {MAX_FILES} at once"
    + (f"; {cap} a minute in this demo)" if cap else ")"),
    accept_multiple_files=True, key="inf_files", max_upload_size=IMAGE_UPLOAD.megabytes)
if predictor is not None:
    with left:
        view.expected_input(predictor)
k = right.slider("Top-k classes", 1, 10, 5, key="inf_k")
invert = right.toggle("Invert colours", key="inf_invert",
                      help="Dark-on-light uploads become light-on-dark before the model sees "
                           "them (for models trained on white strokes on black).")
show_cam = right.toggle("Grad-CAM overlay", key="inf_cam", help=view.CAM_HELP)
cam_stage = view.cam_stage(predictor, right) if show_cam and predictor is not None else None
shot = (st.camera_input("Take a photo", key="inf_camera")
        if right.toggle("Use the camera", key="inf_use_camera") else None)
uploads = [*(files or []), *([shot] if shot is not None else [])]

if predictor is not None and uploads:
    results = view.classify(predictor, model_key, uploads, k, show_cam, cam_stage, invert)
    good = sum(r.ok for r in results)
    refused = len(results) - good
    summary, download = st.columns([3, 1], vertical_alignment="center")
    summary.markdown(f"**{good} of {len(results)} image(s) classified**"
                     + (f"; {refused} refused (reasons below)" if refused else ""))
    # Made when clicked: as bytes, a media file per rerun that a later rerun deletes
    # (see the Architecture page's downloads).
    download.download_button("Download results (CSV)", lambda: results_csv(results),
                             "predictions.csv", "text/csv", key="inf_csv", on_click="ignore")
    view.results_grid(results, show_cam, predictor.card)
elif predictor is not None:
    st.caption("Upload images or use the camera to see what the model thinks and where it looked.")

st.divider()
st.caption("Import a model file, download or upload the ImageNet weights, transfer them into "
           "your architecture, rename or delete models:")
nav.link(nav.MODELS, "Models page")
