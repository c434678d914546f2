"""The layer-graph space: an ordered stack of components for 1-D signals and 2-D images.

Components (kinds.py, one record per kind): conv (kernel, channels, stride), pool (max/avg, size),
dense (units), dropout (rate), norm (batch norm), act (relu/gelu/silu/...), multiscale (parallel
convs of several kernel sizes, `channels` each, concatenated: Inception-style, for inputs whose
useful scale is unknown, such as spectrograms), and skip (span): `skip` adds the tensor from
`span` components earlier to the current one, through a pooling and 1x1 projection where shapes
differ. The first `dense` switches from feature maps to vectors (global average pooling in
between); the network always ends in global pooling and a linear classifier.

Every genome leaving this package has passed `repair` (shapes.py), which makes it buildable for
the task: components that cannot apply (a pool that would shrink a map below 1, a conv after the
first dense, a skip across the map/vector boundary) are dropped or neutralised.

A new kind of component is one ComponentKind record in kinds.py: its parameters' domains, shape
inference, build, description (and optionally its receptive field, draw and repair).
"""

from .genome import HPARAMS, Layer, LayerGenome, LayerSpaceOptions
from .kinds import ACTIVATIONS, COMPONENTS, INSERT_WEIGHTS, KINDS, SPATIAL_ONLY, ComponentKind
from .space import LayerGraphSpace
from .variation import STEM_SIDE

__all__ = ["ACTIVATIONS", "COMPONENTS", "HPARAMS", "INSERT_WEIGHTS", "KINDS", "SPATIAL_ONLY", "STEM_SIDE", "ComponentKind",
           "Layer", "LayerGenome", "LayerGraphSpace", "LayerSpaceOptions"]
