"""Weight-sharing supernets: train once, score any subnet with inherited weights.

A supernet holds the weights of the largest network of a space; every other network of the
space is a part of it (Cai et al., "Once-for-All", ICLR 2020; Lu et al., NSGANetV2, ECCV
2020). It is derived from the space object itself: the supernet asks the space to decode
genomes (``parts`` of the mobile and residual spaces) and reads the blocks it gets, so no
layout is written twice.

``mobile`` (:class:`MobileSupernet`), per block slot of each stage:

* **depth**: a stage of depth ``d`` runs its first ``d`` slots;
* **kernel**: one depthwise kernel of the largest size; a smaller kernel is the centre of
  the next larger one times a learned ``k^2 x k^2`` matrix per block and size step
  (Once-for-All's kernel transformation, identity at initialisation);
* **expansion**: the first ``round(C_in * e)`` hidden channels (expand conv outputs,
  depthwise channels, SE and project inputs). :meth:`MobileSupernet.sort_channels`
  reorders the hidden channels by the L1 norm of their project weights (Once-for-All's
  importance), so the channels that small subnets share are the important ones; training
  calls it at the start of every epoch after the first, and it leaves every subnet with
  the largest expansion unchanged;
* **SE**: on or off per stage (the squeeze width, ``max(1, int(C_in * se))``, is the first
  channels of the largest);
* **resolution**: the weights do not depend on the input size; training feeds each sampled
  subnet its own resolution.

``residual`` (:class:`ResidualSupernet`), one supernet per block type (basic or the
ungrouped bottleneck): elastic depth (the first blocks of a stage) and width per stage (the
first channels of every conv, BN, SE and of the classifier's input), SE on or off, the
resolution; option-A (zero-pad) and option-B (projection) shortcuts as the subnet has them.

The **mobile width multiplier is fixed per supernet** (``width``, default the largest choice of
the space config): it changes every stage's output channels, residual shapes and the trunk,
so Once-for-All too trains one supernet per width. A supernet's space is the space config
with ``width_mults=[width]`` (a residual one's, ``blocks=[block]``); a search scored by it
uses that config.

:meth:`Supernet.extract` returns a subnet's ``(ArchSpec, state_dict)``: ``nas.build``
of that spec loaded with that state_dict computes what the supernet computes for the subnet
(tested to 1e-5 on random genomes, in eval mode after the same BN calibration). The
package: :mod:`~nas.supernet.elastic` (elastic layers), :mod:`~nas.supernet.spaces` (the
supernet of each space, extraction), :mod:`~nas.supernet.calibration` (BN recalibration,
the data subnets are scored on), :mod:`~nas.supernet.training` (the Lightning module) and
:mod:`~nas.supernet.scoring` (checkpoints, inherited-weight scores); the training command
is :mod:`nas.commands.supernet`.
"""

from nas.supernet.calibration import SubnetData, calibrate_bn, resize
from nas.supernet.elastic import ElasticBN, ElasticMBConv, ElasticResBlock
from nas.supernet.scoring import (
    InheritedScorer,
    adopt_checkpoint_space,
    check_space,
    file_hash,
    load_supernet,
    read_supernet_checkpoint,
)
from nas.supernet.spaces import (
    SUPERNETS,
    MobileSupernet,
    ResidualSupernet,
    Supernet,
    extreme_genome,
    make_supernet,
    subnet_net,
)
from nas.supernet.training import ScoreExtremes, SupernetModule

__all__ = ["SUPERNETS", "ElasticBN", "ElasticMBConv", "ElasticResBlock", "InheritedScorer",
           "MobileSupernet", "ResidualSupernet", "ScoreExtremes", "SubnetData", "Supernet",
           "SupernetModule", "adopt_checkpoint_space", "calibrate_bn", "check_space",
           "extreme_genome", "file_hash", "load_supernet", "make_supernet",
           "read_supernet_checkpoint", "resize", "subnet_net"]
