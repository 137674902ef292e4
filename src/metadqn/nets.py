"""Q-networks built from a small spec; parameters are used as a dict of tensors.

``QNet.forward`` accepts any number of leading batch axes (``[..., *obs_shape]`` ->
``[..., n_actions]``), so the same network serves single observations, ``[task, env]``
batches, and ``torch.func.vmap`` over the task axis with ``functional_call``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "elu": F.elu, "silu": F.silu}
KINDS = ("auto", "mlp", "cnn", "gru")


@dataclass
class NetSpec:
    """What Q-network to build.

    kind: "mlp" for vector observations, "cnn" for image observations ``[C, H, W]``, "gru"
        for observation windows ``[steps, features]`` (a recurrent Q-network, DRQN-style, read
        oldest step first; all-zero steps are padding and leave the state alone; see
        ``metadqn.families.with_history``); "auto" (default) picks cnn for 3-D observations,
        else mlp (an MLP reads a window flattened, i.e. frame stacking).
    hidden: widths of the fully connected hidden layers (gru: the first is the encoder and
        recurrent state size, the rest fully connected layers after it).
    channels: conv channels (3x3, stride 1, padding 1), cnn only.
    activation: one of relu, tanh, elu, silu.
    context: size of a task-context vector (CAVIA-style) fed to the first fully connected
        layer next to the observation features; a parameter named ``context``, initialised to
        zero, that the inner loop can adapt alone (``inner_params="context"``). 0 = none.
    film: with a context, it also scales and shifts every hidden fully connected layer's
        output (FiLM, as CAVIA conditions its CNN: h·(1 + γ(c)) + β(c), γ and β linear in c,
        initialised as any linear layer), so that the context can switch features on and off
        rather than only add to the first layer's input — where the task enters the values
        multiplicatively.
    """

    kind: str = "auto"
    hidden: tuple[int, ...] = (64, 64)
    channels: tuple[int, ...] = field(default=(16, 32))
    activation: str = "relu"
    context: int = 0
    film: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"net kind must be one of {KINDS}, got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        self.hidden = tuple(int(h) for h in self.hidden)
        self.channels = tuple(int(c) for c in self.channels)
        self.context = int(self.context)
        if self.context < 0:
            raise ValueError(f"context must be >= 0, got {self.context}")
        if not isinstance(self.film, bool):
            raise ValueError(f"film must be true or false, got {self.film!r}")
        if any(h < 1 for h in self.hidden + self.channels):
            raise ValueError(f"layer widths must be >= 1, got hidden={self.hidden} channels={self.channels}")


class QNet(nn.Module):
    """Q(s, .) for every action. MLP on flat observations; 3x3 convolutions then MLP on images.

    :meth:`functional` is the network as a pure function of a parameter dict (plain
    ``F.linear``/``F.conv2d`` calls), which ``grad`` and ``vmap`` transform directly and
    which costs far less per call than ``functional_call``'s re-parametrisation.
    """

    def __init__(self, spec: NetSpec, obs_shape: tuple[int, ...], n_actions: int) -> None:
        super().__init__()
        self.spec, self.obs_shape, self.n_actions = spec, tuple(obs_shape), int(n_actions)
        self.act = ACTIVATIONS[spec.activation]
        self.convs = nn.ModuleList()
        self.kind = spec.kind if spec.kind != "auto" else ("cnn" if len(self.obs_shape) == 3 else "mlp")
        if self.kind == "cnn":
            if len(self.obs_shape) != 3:
                raise ValueError(f"a cnn needs image observations [C, H, W], got shape {list(obs_shape)}")
            c_in = self.obs_shape[0]
            for c in spec.channels:
                self.convs.append(nn.Conv2d(c_in, c, 3, padding=1))
                c_in = c
            width = c_in * self.obs_shape[1] * self.obs_shape[2]
            fc_hidden = spec.hidden
        elif self.kind == "gru":
            if len(self.obs_shape) != 2:
                raise ValueError("a gru reads observation windows [steps, features]; got shape "
                                 f"{list(obs_shape)} (wrap the family with metadqn.families.with_history)")
            if not spec.hidden:
                raise ValueError("a gru needs hidden=(state size, ...)")
            width = spec.hidden[0]
            self.enc = nn.Linear(self.obs_shape[1], width)
            self.gru = nn.GRUCell(width, width)
            fc_hidden = spec.hidden[1:]
        else:
            width = 1
            for d in self.obs_shape:
                width *= d
            fc_hidden = spec.hidden
        if spec.context:
            self.context = nn.Parameter(torch.zeros(spec.context))
            width += spec.context
        self.fcs = nn.ModuleList()
        for h in (*fc_hidden, self.n_actions):
            self.fcs.append(nn.Linear(width, h))
            width = h
        self.films = nn.ModuleList(nn.Linear(spec.context, 2 * h) for h in fc_hidden) \
            if spec.film and spec.context else nn.ModuleList()

    def functional(self, params: Mapping[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``[..., n_actions]`` for observations ``[..., *obs_shape]`` under ``params``."""
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        x = obs.reshape(-1, *self.obs_shape)
        for i in range(len(self.convs)):
            x = self.act(F.conv2d(x, params[f"convs.{i}.weight"], params[f"convs.{i}.bias"], padding=1))
        x = self._recur(params, x) if self.kind == "gru" else x.flatten(1)
        if self.spec.context:
            x = torch.cat((x, params["context"].expand(x.shape[0], -1)), dim=1)
        last = len(self.fcs) - 1
        for i in range(last + 1):
            x = F.linear(x, params[f"fcs.{i}.weight"], params[f"fcs.{i}.bias"])
            if i < last:
                x = self.act(x)
                if len(self.films):
                    scale, shift = F.linear(params["context"], params[f"films.{i}.weight"],
                                            params[f"films.{i}.bias"]).chunk(2, -1)
                    x = x * (1 + scale) + shift
        return x.reshape(*lead, self.n_actions)

    def _recur(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The GRU's last state ``[N, H]`` over windows ``[N, steps, features]`` (as ``nn.GRUCell``)."""
        valid = (x != 0).any(-1, keepdim=True)                                     # [N, steps, 1]
        gi = F.linear(self.act(F.linear(x, params["enc.weight"], params["enc.bias"])),
                      params["gru.weight_ih"], params["gru.bias_ih"])               # [N, steps, 3H]
        h = x.new_zeros(x.shape[0], params["gru.weight_hh"].shape[1])
        for t in range(x.shape[1]):
            i_r, i_z, i_n = gi[:, t].chunk(3, -1)
            h_r, h_z, h_n = F.linear(h, params["gru.weight_hh"], params["gru.bias_hh"]).chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = torch.where(valid[:, t], (1 - z) * n + z * h, h)
        return h

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.functional(dict(self.named_parameters()), obs)


def build_qnet(spec: NetSpec, obs_shape: tuple[int, ...], n_actions: int) -> QNet:
    return QNet(spec, obs_shape, n_actions)


def init_params(net: nn.Module, seed: int) -> Params:
    """Fresh parameters for ``net`` (PyTorch default init) drawn reproducibly from ``seed``, on
    the device ``net`` lives on — drawn on the CPU, so a seed gives the same network on every
    device (a GPU's random stream differs from the CPU's)."""
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    if device.type != "cpu":
        return {k: v.to(device) for k, v in init_params(copy.deepcopy(net).cpu(), seed).items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        if isinstance(getattr(net, "context", None), nn.Parameter):
            with torch.no_grad():
                net.context.zero_()
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def q_values(net: nn.Module, params: Mapping[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """Q-values ``[..., n_actions]`` of ``net`` evaluated with ``params`` (a dict of tensors)."""
    if isinstance(net, QNet):
        return net.functional(params, obs)
    return functional_call(net, dict(params), (obs,))
