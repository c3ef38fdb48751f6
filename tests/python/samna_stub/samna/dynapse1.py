"""Stand-in samna.dynapse1: the documented data classes and a recording Dynapse1Model.

Fields and defaults follow the samna.dynapse1 reference page: an empty CAM listens to
(core 0, neuron 0) with type NMDA, destinations start unused. The enum order is the one
robust-snn assumes (unconfirmed on hardware); samna_setup.py uses the member names only.
"""
import enum


class Dynapse1SynType(enum.IntEnum):
    GABA_B = 0
    GABA_A = 1
    NMDA = 2
    AMPA = 3


class Dynapse1Synapse:
    def __init__(self):
        self.listen_core_id = 0
        self.listen_neuron_id = 0
        self.syn_type = Dynapse1SynType.NMDA


class Dynapse1Destination:
    def __init__(self):
        self.target_chip_id = 0
        self.in_use = False
        self.virtual_core_id = 0
        self.core_mask = 0
        self.sx = self.sy = False
        self.dx = self.dy = 0


class Dynapse1Neuron:
    def __init__(self, chip=0, core=0, neuron=0):
        self.chip_id, self.core_id, self.neuron_id = chip, core, neuron
        self.synapses = [Dynapse1Synapse() for _ in range(64)]
        self.destinations = [Dynapse1Destination() for _ in range(4)]


class Dynapse1Core:
    def __init__(self, chip=0, core=0):
        self.chip_id, self.core_id = chip, core
        self.neurons = [Dynapse1Neuron(chip, core, n) for n in range(256)]


class Dynapse1Chip:
    def __init__(self, chip=0):
        self.chip_id = chip
        self.cores = [Dynapse1Core(chip, c) for c in range(4)]


class Dynapse1Configuration:
    def __init__(self):
        self.chips = [Dynapse1Chip(c) for c in range(4)]


class Dynapse1Parameter:
    def __init__(self, name, coarse, fine):
        self.param_name, self.coarse_value, self.fine_value = name, coarse, fine


class Dynapse1Model:
    """Records what a script writes to the board."""

    def __init__(self):
        self.configs = []
        self.params = []

    def apply_configuration(self, config):
        self.configs.append(config)

    def update_single_parameter(self, param, chip, core):
        self.params.append([chip, core, param.param_name, param.coarse_value, param.fine_value])
