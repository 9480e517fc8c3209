"""The main job's live output (issue 14, item 11): a progress bar per notebook, no kernel TCP warning."""

import io

import nbformat

from irnlib.app.pipeline import KERNEL_NOISE, forward_kernel_stderr, reproduce


def test_each_notebook_shows_a_bar_of_cells_and_the_kernel_tcp_warning_is_left_out(tmp_path, capfd):
    book = tmp_path / "notebooks"
    book.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = x + 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "00_only.ipynb")

    reproduce("smoke", notebook_dir=book, results=tmp_path / "results")
    err = capfd.readouterr().err
    assert "00_only.ipynb: 100%" in err and "4/4" in err  # papermill adds the injected-parameters cell
    assert "without encryption" not in err


def test_forwarding_the_kernel_stderr_drops_only_the_noise():
    kernel_stderr = io.BytesIO(
        b"[IPKernelApp] WARNING | " + KERNEL_NOISE + b". All communication ...\n"
        b"[IPKernelApp] ERROR | something the user must see\n"
    )
    out = io.StringIO()
    forward_kernel_stderr(kernel_stderr, out)
    assert out.getvalue() == "[IPKernelApp] ERROR | something the user must see\n"
