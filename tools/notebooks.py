"""Make a Jupyter notebook of each chapter script: notebooks/<chapter>.ipynb from code/<chapter>.py.

    python tools/notebooks.py            # rewrite the notebooks
    python tools/notebooks.py --check    # exit 1 if a notebook is out of date with its script

The script stays the source (as in keras-io's tutobooks); a notebook is never edited by hand. From the script:

- its docstring becomes the first Markdown cell, and each `# ## Section` comment a Markdown heading;
- a set-up cell (not in the script) moves to the repository's root and puts code/ on the path, so that
  `from vae...` and `from vae_2d import ...` work whether the notebook was opened from notebooks/ or the root;
- the hyperparameter block, `hyperparameters = Config(...)` of its `if __name__ == "__main__":`, is the first
  cell to edit, with out="runs/notebook" added: a notebook's run writes under runs/notebook/ (ignored by git),
  never over the committed results, unless the reader changes `out`;
- the code between, without `start(__file__)` (a notebook has no __file__, and the kernel's command line is
  not the chapter's flags), one cell per top-level block;
- `main(parse_flags(hyperparameters, ...))` becomes `main(hyperparameters.check(...))`, and a last cell shows
  the figures the run wrote.

Writes plain notebook JSON (nbformat 4.5) without needing Jupyter installed.
"""

import argparse
import ast
import json
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["vae_2d", "vae_3d", "vae_correlated", "vae_conditional"]
NOTEBOOK_OUT = "runs/notebook"  # where a notebook's run writes assets/ and models/, from the repository's root

SETUP = '''\
# Work from the repository's root with code/ on the path, as `python code/CHAPTER.py` does, whether this
# notebook was opened from notebooks/ or from the root.
import os
import sys
from pathlib import Path

if not Path("code/vae").is_dir() and Path("../code/vae").is_dir():
    os.chdir("..")
if str(Path("code").resolve()) not in sys.path:
    sys.path.insert(0, str(Path("code").resolve()))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up notes stay quiet, as in the script'''

SHOW_FIGURES = '''\
# The figures this run wrote (they are in {out}/assets/, its models and metrics in {out}/models/).
from IPython.display import Image, display

for figure in sorted(Path(hyperparameters.out, "assets").glob("*.png"), key=os.path.getmtime):
    if figure.stat().st_mtime >= run_started:
        print(figure)
        display(Image(filename=figure))'''


def notebook(script):
    """The notebook (a dict in nbformat 4.5) made from the chapter script at `script`."""
    source = Path(script).read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    chapter = Path(script).stem
    docstring = ast.get_docstring(tree)
    title, _, rest = docstring.partition("\n")
    cells = [markdown(f"# {title}\n{rest}\n\n*This notebook is made from `code/{chapter}.py` by "
                      f"`tools/notebooks.py`: edit the script, not the notebook. Set the hyperparameters in the "
                      f"first cell below the set-up; the run writes under `{NOTEBOOK_OUT}/`, not over the "
                      f"tutorial's results.*"),
             code(SETUP.replace("CHAPTER", chapter))]

    main_block = next(node for node in tree.body if isinstance(node, ast.If)
                      and ast.unparse(node.test) == "__name__ == '__main__'")
    block = next(node for node in main_block.body if isinstance(node, ast.Assign)
                 and ast.unparse(node.targets[0]) == "hyperparameters")
    flags = next(node for node in ast.walk(main_block) if isinstance(node, ast.Call)
                 and ast.unparse(node.func) == "parse_flags")
    min_latent_dim = next((ast.literal_eval(k.value) for k in flags.keywords if k.arg == "min_latent_dim"), 1)
    config_lines = textwrap.dedent("\n".join(lines[block.lineno - 1:block.end_lineno])).splitlines()
    config_lines.insert(-1, f'    out="{NOTEBOOK_OUT}",  # the run writes {NOTEBOOK_OUT}/assets/ and models/, '
                            f'not the tutorial\'s own')
    cells += [markdown("## The hyperparameters\n\nEdit them here, then run the cells below (*Run All*)."),
              code("from vae.config import Config\n\n" + "\n".join(config_lines))]

    # The code between the docstring and the __main__ block, without `start(__file__)` and its import.
    skipped = {node.lineno for node in tree.body if _is_start(node)}
    body = [line for number, line in enumerate(lines[tree.body[0].end_lineno:main_block.lineno - 1],
                                               start=tree.body[0].end_lineno + 1) if number not in skipped]
    # A `# ## Section` comment is a heading; between headings, each top-level block (two blank lines apart) a cell.
    sections = [[]]
    for line in body:
        if line.startswith("# ## "):
            sections += [[markdown(line[2:])], []]
        else:
            sections[-1].append(line.replace("  # noqa: E402  ", "  # ").replace("  # noqa: E402", ""))
    for section in sections:
        if section and isinstance(section[0], dict):
            cells += section
        else:
            cells += [code(text) for text in "\n".join(section).split("\n\n\n") if text.strip()]
    cells += [markdown("## Train, draw the figures, save"),
              code(f"import time\n\nrun_started = time.time()\nmain(hyperparameters.check(min_latent_dim={min_latent_dim}))"),
              code(SHOW_FIGURES.format(out=NOTEBOOK_OUT))]
    for number, cell in enumerate(cells):
        cell["id"] = f"{chapter}-{number}"
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                       "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _is_start(node):
    """`from vae.start import start` or `start(__file__)`: a script's start, not a notebook's."""
    if isinstance(node, ast.ImportFrom):
        return node.module == "vae.start"
    return isinstance(node, ast.Expr) and ast.unparse(node.value) == "start(__file__)"


def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": _source(text)}


def code(text):
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": _source(text)}


def _source(text):
    """A cell's text as nbformat stores it: a list of lines, each but the last ending in a newline."""
    return text.strip("\n").splitlines(keepends=True)


def notebook_text(script):
    return json.dumps(notebook(script), indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook is out of date, writing nothing")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    stale = []
    for chapter in CHAPTERS:
        text = notebook_text(args.root / "code" / f"{chapter}.py")
        path = args.root / "notebooks" / f"{chapter}.ipynb"
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print("out of date with their scripts: " + ", ".join(str(p) for p in stale)
              + "; run python tools/notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
