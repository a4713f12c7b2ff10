"""The Train page's live curves (runs/charts.py): readable before the first epoch and after an
outlier, without Streamlit."""

from __future__ import annotations

from resnet_explorer.runs.charts import (LOSS_CLIP_FACTOR, accuracy_figure, loss_figure,
                                         training_figures)


def steps(losses: list[float], per_epoch: int = 10) -> list[dict]:
    return [{"kind": "step", "step": i, "epoch": i / per_epoch, "loss": v, "lr": 0.1,
             "images_per_s": 100.0} for i, v in enumerate(losses)]


# An unlucky first epoch (the run): training loss about 2, validation loss 521.
STEPS = steps([2.4, 2.3, 2.2, 2.1, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.2, 1.0, 0.8])
EPOCHS = [{"kind": "epoch", "epoch": 1, "train_loss": 1.9, "val_loss": 521.0, "train_acc": 0.3,
           "val_acc": 0.103},
          {"kind": "epoch", "epoch": 2, "train_loss": 0.9, "val_loss": 1.1, "train_acc": 0.7,
           "val_acc": 0.8}]


def test_the_accuracy_axis_is_0_to_100_percent_before_the_first_epoch_and_after():
    for records in ([], EPOCHS):
        fig = accuracy_figure(records)
        assert tuple(fig.layout.yaxis.range) == (0.0, 1.0)
        assert fig.layout.yaxis.tickformat == ".0%"


def test_one_huge_validation_loss_is_left_off_the_linear_axis_and_named():
    fig = loss_figure(STEPS, EPOCHS)
    top = fig.layout.yaxis.range[1]
    assert top == LOSS_CLIP_FACTOR * 2.4  # the training curve fills the chart
    [note] = fig.layout.annotations
    assert "validation 521 at epoch 1" in note.text and "log axis" in note.text


def test_the_log_axis_shows_everything():
    fig = training_figures(STEPS, EPOCHS, log_loss=True)["loss"]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.range is None
    assert not fig.layout.annotations


def test_losses_without_outliers_autoscale_as_before():
    fig = loss_figure(STEPS, EPOCHS[1:])
    assert fig.layout.yaxis.range is None and not fig.layout.annotations
    assert loss_figure([], []).layout.yaxis.range is None  # nothing yet
