"""How a training run writes checkpoint files: in their destination folder, renamed there
(``checkpoint.save_atomically``). Lightning's own save goes through fsspec, which writes a
temporary file in the system's temporary folder and moves it: across filesystems a full disk
leaves a truncated file under the final name."""

from typing import Any

from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from seq2seq_nmt.checkpoint import save_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO whose saves are atomic in the destination folder; a failed one
    (a full disk) raises OSError and leaves no file under the final name."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        save_atomically(checkpoint, path)
