"""Stand-in of ctxctl_contrib's 2022 dynapse1utils.py (illian-g/...DYNAP_SE2-)."""
import samna.dynapse1 as dyn1

OPENED = []  # {"args": [...], "kwargs": {...}} of every open_dynapse1 call


def open_dynapse1(gui=False, select_device=False, sender_port=33336, receiver_port=33335):
    """The real one takes no device name (the board is 'Dynapse1DevKit:index') and returns
    (model, gui_process), gui_process '' when gui=False."""
    OPENED.append({"args": [],
                   "kwargs": {"gui": gui, "select_device": select_device,
                              "sender_port": sender_port, "receiver_port": receiver_port}})
    return dyn1.Dynapse1Model(), ("gui process" if gui else "")
