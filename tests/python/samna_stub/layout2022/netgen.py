"""Stand-in of ctxctl_contrib's 2022 netgen.py (illian-g/...DYNAP_SE2-): records every
add_connection; a left-to-right connection only prints a warning there (recorded here)."""
from netgen_stub import CALLS, LEFT_TO_RIGHT, Neuron, RecordingGenerator  # noqa: F401


class NetworkGenerator(RecordingGenerator):
    def left_to_right(self, pre, post):
        LEFT_TO_RIGHT.append([pre.key(), post.key()])
        print("WARNING: you are building connections from left chips [0,2] to right chips [1,3]!")

    def make_dynapse1_configuration(self, validation=True):
        return self.config
