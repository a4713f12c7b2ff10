"""ResNet34 Explorer: all logic of the dashboard, importable and testable without Streamlit.

Rooms, lowest first; each imports only rooms listed before it, and rooms on one line not
each other (pyproject.toml's import-linter contracts hold this; run `lint-imports`):

    common/     errors, paths, atomic files, config schema, devices
    arch/       option tables, ArchConfig + presets, blocks, build_model, weight checks
    analysis/   shape walk, analyze(), reports and charts     (python -m resnet_explorer.analysis)
    datasets/   catalogue, loading, folders, zip uploads, image decoding, transforms
    runs/       run directories, launch, queue, supervisor, reading (never imports torch)
    models/     the model store (safetensors + sidecar), imports, pretrained weights
    training/   TrainConfig, the loop, DDP glue, the run job    (python -m resnet_explorer.train)
    inference/  predictor, Grad-CAM, charts

analysis, datasets and runs share a layer, as do training and inference.

Chart modules (`*.charts`) need plotly, which only the dashboard installs; only pages and
ui/ import them, by their full name. Everything else also runs on a training machine
without plotly, Streamlit or torchinfo.
"""
