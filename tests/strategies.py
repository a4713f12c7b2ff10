"""Hypothesis strategies for small, valid architectures (fast to build and run)."""

from hypothesis import assume
from hypothesis import strategies as st

from resnet_explorer.arch import ACTIVATIONS, BLOCKS, NORMS, SHORTCUTS, STEMS, ArchConfig


@st.composite
def small_configs(draw, max_stages: int = 3) -> ArchConfig:
    n = draw(st.integers(1, max_stages))
    widths = tuple(draw(st.sampled_from([4, 8, 16])) for _ in range(n))
    cfg = ArchConfig(
        stem=draw(st.sampled_from(list(STEMS))),
        stem_width=draw(st.sampled_from([4, 8, 16])),
        blocks=tuple(draw(st.integers(1, 2)) for _ in range(n)),
        widths=widths,
        width_multiplier=draw(st.sampled_from([0.5, 1.0, 1.5])),
        block=draw(st.sampled_from(list(BLOCKS))),
        shortcut=draw(st.sampled_from(list(SHORTCUTS))),
        depthwise=tuple(draw(st.booleans()) for _ in range(n)),
        activation=draw(st.sampled_from(list(ACTIVATIONS))),
        leaky_slope=draw(st.sampled_from([0.01, 0.2])),
        norm=draw(st.sampled_from(list(NORMS))),
        norm_groups=draw(st.sampled_from([1, 2, 4])),
        se_reduction=draw(st.sampled_from([0, 4, 16])),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        drop_path=draw(st.sampled_from([0.0, 0.2])),
        zero_init_last=draw(st.booleans()),
        head_hidden=draw(st.sampled_from([0, 12])),
        in_channels=draw(st.sampled_from([1, 3])),
        num_classes=draw(st.integers(1, 12)),
    )
    assume(cfg.validate() == [])
    return cfg
