"""What the two ctxctl_contrib network-generator stand-ins (layout2021/NetworkGenerator.py,
layout2022/netgen.py) have in common: the recorded calls and the Neuron of the real
constructors. Each layout adds only what differs: its reaction to a left-to-right connection."""
import samna.dynapse1 as dyn1

CALLS = []  # [pre, post, synapse type name], pre/post = [chip, core, neuron, is_spike_gen]
LEFT_TO_RIGHT = []


class Neuron:
    def __init__(self, chip_id=0, core_id=0, neuron_id=0, is_spike_gen=False):
        # as the real constructor: spike generators exist on chip 0 only
        num_chips = 1 if is_spike_gen else 4
        if not 0 <= chip_id < num_chips:
            raise Exception("chip id invalid!")
        if not 0 <= core_id < 4:
            raise Exception("core id invalid!")
        if not 0 <= neuron_id < 256:
            raise Exception("neuron id invalid!")
        self.chip_id, self.core_id, self.neuron_id = chip_id, core_id, neuron_id
        self.is_spike_gen = is_spike_gen

    def key(self):
        return [self.chip_id, self.core_id, self.neuron_id, self.is_spike_gen]


class RecordingGenerator:
    """add_connection as both layouts check it; `left_to_right(pre, post)` is the layout's
    reaction to a connection from chips [0,2] to chips [1,3] (FPGA inputs exempt, as there)."""

    def __init__(self):
        self.config = dyn1.Dynapse1Configuration()

    def add_connection(self, pre, post, synapse_type):
        if post.is_spike_gen:
            raise Exception("post neuron cannot be a spike generator!")
        if pre.is_spike_gen is False and pre.chip_id in [0, 2] and post.chip_id in [1, 3]:
            self.left_to_right(pre, post)
        CALLS.append([pre.key(), post.key(), dyn1.Dynapse1SynType(synapse_type).name])
