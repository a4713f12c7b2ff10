"""ResNet34 Explorer: model, analysis, training and inference logic (no Streamlit)."""
