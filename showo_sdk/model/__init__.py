"""Model side (torch): the reference Show-o transformer, the MAGVIT-v2 tokenizer, loaders, decoding."""

from .generate import maskgit_loop, mmu_generate, t2i_generate
from .magvit import MagvitV2
from .magvit_io import load_magvit
from .showo_io import load_showo, save_pretrained
from .transformer import ShowoTransformer

__all__ = [
    "ShowoTransformer", "MagvitV2", "load_showo", "load_magvit", "save_pretrained",
    "t2i_generate", "mmu_generate", "maskgit_loop",
]
