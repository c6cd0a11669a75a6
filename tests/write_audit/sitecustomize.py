"""Test helper, loaded by Python at start-up when this folder is on PYTHONPATH: records every file a process writes.

Each process appends the paths it writes (open() for writing, os.replace/os.rename targets, torch.save and
safetensors' save_file) to $WRITE_AUDIT_DIR/rank<RANK>.<pid>.txt, so a test can check which process wrote what.
"""
import builtins
import io
import os

_DIR = os.environ.get("WRITE_AUDIT_DIR")

if _DIR:
    _open, _replace, _rename = builtins.open, os.replace, os.rename
    _log = os.path.join(_DIR, f"rank{os.environ.get('RANK', 'none')}.{os.getpid()}.txt")

    def _record(path) -> None:
        if isinstance(path, (str, os.PathLike)):
            fd = os.open(_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                os.write(fd, (os.path.abspath(os.fspath(path)) + "\n").encode())
            finally:
                os.close(fd)

    def _audited_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            _record(file)
        return _open(file, mode, *args, **kwargs)

    def _audited_replace(src, dst, *args, **kwargs):
        _record(dst)
        return _replace(src, dst, *args, **kwargs)

    def _audited_rename(src, dst, *args, **kwargs):
        _record(dst)
        return _rename(src, dst, *args, **kwargs)

    builtins.open = io.open = _audited_open
    os.replace, os.rename = _audited_replace, _audited_rename

    import safetensors.torch
    import torch

    _torch_save, _save_file = torch.save, safetensors.torch.save_file

    def _audited_torch_save(obj, f, *args, **kwargs):
        _record(f)
        return _torch_save(obj, f, *args, **kwargs)

    def _audited_save_file(tensors, filename, *args, **kwargs):
        _record(filename)
        return _save_file(tensors, filename, *args, **kwargs)

    torch.save, safetensors.torch.save_file = _audited_torch_save, _audited_save_file
