"""Runs an emitted samna_setup.py against the recording stand-ins of samna_stub/ and prints, as
one JSON line, what it did: the add_connection calls, the biases written, how the board was
opened, which layout it picked, and whether its module level imported anything outside the
standard library. tests/export.rs compares that with network.json.

    python3 samna_contract.py SCRIPT LAYOUT [ARGS...]

LAYOUT: 2021 (NetworkGenerator.py + Dynapse1Utils.py), 2022 (netgen.py + dynapse1utils.py),
2022pkg (netgen.py + dynapse/dynapse1utils.py), or none (neither on the path: the script must
exit with a message). ARGS go to the script's main().
"""
import importlib.util
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STUB = os.path.join(HERE, "samna_stub")
CTXCTL = ["netgen", "dynapse1utils", "dynapse", "NetworkGenerator", "Dynapse1Utils", "samna"]


def load(path):
    spec = importlib.util.spec_from_file_location("samna_setup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    script, layout, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    before = set(sys.modules)
    script_module = load(script)
    new = {m.split(".")[0] for m in set(sys.modules) - before}
    out = {"module_level_imports": sorted(new),
           "stdlib_only": all(m in sys.stdlib_module_names for m in new)}
    if layout == "none":
        try:
            script_module.main(args)
            out["exit"] = None
        except SystemExit as e:
            out["exit"] = str(e.code)
        print(json.dumps(out))
        return
    paths = [STUB]
    if layout == "2021":
        paths.append(os.path.join(STUB, "layout2021"))
    elif layout == "2022":
        paths.append(os.path.join(STUB, "layout2022"))
    elif layout == "2022pkg":
        # the utilities inside a `dynapse` package, as some ctxctl_contrib checkouts have them
        tmp = tempfile.mkdtemp()
        shutil.copy(os.path.join(STUB, "layout2022", "netgen.py"), tmp)
        os.mkdir(os.path.join(tmp, "dynapse"))
        open(os.path.join(tmp, "dynapse", "__init__.py"), "w").close()
        shutil.copy(os.path.join(STUB, "layout2022", "dynapse1utils.py"),
                    os.path.join(tmp, "dynapse"))
        paths.append(tmp)
    else:
        raise SystemExit("unknown layout " + layout)
    sys.path[:0] = paths
    model = script_module.main(args)
    gen = sys.modules.get("netgen") or sys.modules["NetworkGenerator"]
    utils = (sys.modules.get("dynapse1utils") or sys.modules.get("dynapse.dynapse1utils")
             or sys.modules["Dynapse1Utils"])
    out.update({
        "generator_module": gen.__name__,
        "utils_module": utils.__name__,
        "calls": gen.CALLS,
        "left_to_right": gen.LEFT_TO_RIGHT,
        "opened": utils.OPENED,
        "params": model.params,
        "configs_applied": len(model.configs),
        "config_is_generators": all(type(c).__name__ == "Dynapse1Configuration"
                                    for c in model.configs),
    })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
