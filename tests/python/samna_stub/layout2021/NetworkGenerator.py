"""Stand-in of ctxctl_contrib's 2021 NetworkGenerator.py (neuromorphic-CPG@0d3b4b5): records
every add_connection; raises on left-to-right connections as the real one does."""
from netgen_stub import CALLS, LEFT_TO_RIGHT, Neuron, RecordingGenerator  # noqa: F401


class NetworkGenerator(RecordingGenerator):
    def left_to_right(self, pre, post):
        LEFT_TO_RIGHT.append([pre.key(), post.key()])
        raise Exception("connections from left chips [0,2] to right chips [1,3] are forbidden!")

    def make_dynapse1_configuration(self):
        return self.config
