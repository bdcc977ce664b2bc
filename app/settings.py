"""Every server setting in one typed table: default, environment variable and help text.

The CLI builds its ``serve`` flags from this table and the README documents each row (a test
fails when one is missing), so a setting exists in exactly one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from app.errors import InvalidInput, UnusablePath

#: The ``--quantize`` choices (the one declaration: the loader checks against it, the CLI offers it).
QUANTIZE_CHOICES: tuple[str, ...] = ("auto", "int4", "4bit", "8bit", "none")
#: The ``--dtype`` choices (one declaration, like the quantize choices).
DTYPE_CHOICES: tuple[str, ...] = ("auto", "bfloat16", "float32")


def _setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, secret: bool = False) -> Any:
    return field(default=default, repr=not secret, metadata={"help": help, "choices": choices, "secret": secret})


@dataclass
class AppSettings:
    """Server settings. Each is ``--flag`` on ``python -m app serve`` and ``TRACELAB_<NAME>`` in the environment."""

    model: str = _setting(
        "bundled",
        "Model to load: a Hub id (Qwen/Qwen3-4B), a local folder, a .gguf file, 'bundled' (SmolLM2-135M, "
        "CPU-friendly), 'tiny' (random weights, for tests).",
    )
    quantize: str = _setting(
        "auto",
        "Quantisation: int4 (torch's int4 CPU kernel, group 32, bf16 compute; CPU only), 4bit (bitsandbytes "
        "NF4, bf16 compute; CUDA and CPU), 8bit (bitsandbytes; slow on CPU) or none. auto = 4bit on CUDA; on "
        "CPU int4 where torch runs its AVX512 int4 kernel (measured 1.8x fp32, 1.4x NF4), else 4bit where "
        "bitsandbytes has its fused NF4 kernel, else none. A .gguf takes int4 or none. See README Benchmarks.",
        choices=QUANTIZE_CHOICES,
    )
    dtype: str = _setting(
        "auto",
        "Weight dtype of unquantised layers (and the compute dtype of NF4 and int4): bfloat16 or float32; "
        "auto = bfloat16 on CUDA and for NF4 and int4, float32 for plain weights on CPU (bf16 was 1.48x "
        "on one quiet CPU, 0.96x on another and 0.70x under load, and it changes greedy text; see README "
        "Benchmarks).",
        choices=DTYPE_CHOICES,
    )
    format: str = _setting(
        "",
        "Reasoning format override (qwen3, smollm3, deepseek-r1, granite, phi4-reasoning, "
        "prompted, plain); empty = detect from the chat template.",
    )
    db: str = _setting("", "SQLAlchemy database URL; empty = sqlite:///<data dir>/tracelab.db.")
    data_dir: str = _setting(str(Path.home() / ".local" / "share" / "tracelab"), "Folder for the default SQLite file.")
    cache_dir: str = _setting("", "Folder for converted models; empty = ~/.cache/tracelab.")
    host: str = _setting("127.0.0.1", "Interface to listen on (the Docker image sets 0.0.0.0).")
    port: int = _setting(7860, "Port to listen on.")
    auth: str = _setting(
        "", "Annotator logins: 'user:pass,user2:pass2' or a path to a file with one user:pass per line."
    )
    server: str = _setting(
        "",
        "OpenAI-compatible inference server to generate on, e.g. http://gpu-box:8000/v1 (vLLM, SGLang, "
        "llama.cpp, transformers serve); empty = generate in-process. --model then loads only the tokenizer.",
    )
    server_model: str = _setting("", "Model name the server expects; empty = the first one its /v1/models lists.")
    api_key: str = _setting("", "API key for --server, sent as a bearer token; never logged or stored.", secret=True)
    server_prompt: str = _setting(
        "text",
        "How --server requests send the prompt: text (every server), or tokens: token ids built like the local "
        "engine's, so a forced join (close tag + answer cue, 'Wait') is the same tokens as in-process (vLLM, "
        "SGLang, llama.cpp's llama-server take them; transformers serve and llama-cpp-python do not). Needs the "
        "server's model to use --model's tokenizer.",
        choices=("text", "tokens"),
    )
    token_data: str = _setting(
        "on",
        "Record each token's probability, entropy and top alternatives for the token lens; on a server this "
        "asks for logprobs (llama-cpp-python's own server computes them in Python: ~5x slower decode there); "
        "off = no lens data, fastest.",
        choices=("on", "off"),
    )
    max_samples: int = _setting(32, "Largest k (samples per prompt) a user may ask for in Self-consistency and Sweep.")
    max_new_tokens: int = _setting(
        32768,
        "Most tokens one sample may generate (thinking budget + answer), for every tab, the API and the CLI; "
        "the model's context length caps prompt + these tokens as well.",
    )
    admins: str = _setting(
        "",
        "Comma-separated logins that may delete anyone's runs (everyone else only their own); "
        "without --auth everyone is 'local'.",
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> AppSettings:
        """Defaults <- ``TRACELAB_*`` environment <- explicit overrides (CLI flags that were given)."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"TRACELAB_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = type(f.default)(raw)
                except ValueError:
                    raise InvalidInput(f"TRACELAB_{f.name.upper()}={raw!r} is not a whole number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise InvalidInput(f"{f.name}={getattr(self, f.name)!r} is not one of {', '.join(choices)}")
        if not 0 < int(self.port) < 65536:
            raise InvalidInput(f"port={self.port} must be between 1 and 65535")
        if int(self.max_new_tokens) < 1:
            raise InvalidInput(f"max_new_tokens={self.max_new_tokens} must be at least 1")
        if int(self.max_samples) < 1:
            raise InvalidInput(f"max_samples={self.max_samples} must be at least 1")

    def admin_names(self) -> frozenset[str]:
        """The logins named in ``admins``."""
        return frozenset(name.strip() for name in self.admins.split(",") if name.strip())

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{Path(self.data_dir).expanduser() / 'tracelab.db'}"

    @property
    def cache_path(self) -> Path | None:
        return Path(self.cache_dir).expanduser() if self.cache_dir else None

    def auth_pairs(self) -> list[tuple[str, str]]:
        """Parse ``auth`` into (user, password) pairs; a clear error for a malformed entry."""
        if not self.auth:
            return []
        source = Path(self.auth).expanduser()
        try:
            text = source.read_text() if source.is_file() else self.auth.replace(",", "\n")
        except (OSError, UnicodeDecodeError) as exc:  # the user's file: unreadable, or not text
            raise UnusablePath(
                f"cannot read the --auth file {source}: {getattr(exc, 'strerror', None) or exc}; "
                "make it a readable text file of user:password lines"
            ) from exc
        pairs = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep or not user or not password:
                raise InvalidInput(f"auth entry {line!r} must look like user:password")
            pairs.append((user.strip(), password.strip()))
        return pairs


def describe_settings() -> list[tuple[str, str, str, str]]:
    """Rows of (flag, env var, default, help) for docs and ``--help``."""
    return [
        (f"--{f.name.replace('_', '-')}", f"TRACELAB_{f.name.upper()}", str(f.default), f.metadata["help"])
        for f in fields(AppSettings)
    ]
