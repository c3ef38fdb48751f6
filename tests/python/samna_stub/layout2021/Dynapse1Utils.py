"""Stand-in of ctxctl_contrib's 2021 Dynapse1Utils.py (neuromorphic-CPG@0d3b4b5)."""
import types

import samna.dynapse1 as dyn1

OPENED = []  # {"args": [...], "kwargs": {...}} of every open_dynapse1 call


def open_dynapse1(device_name, gui=True, sender_port=33336, receiver_port=33335):
    """The real one opens the board under `device_name`; with gui=False it returns the store,
    whose attribute `device_name` is the Dynapse1Model (with gui=True: store, gui process)."""
    OPENED.append({"args": [device_name],
                   "kwargs": {"gui": gui, "sender_port": sender_port,
                              "receiver_port": receiver_port}})
    store = types.SimpleNamespace(**{device_name: dyn1.Dynapse1Model()})
    return (store, "gui process") if gui else store
