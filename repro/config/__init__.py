"""Typed configuration: params.yaml validated into frozen dataclasses at stage start."""
from .params import (METHODS, PRETRAIN_KINDS, REGIMES, TIERS, AttackParams, DataParams, EvalParams, Experiment,
                     ImpParams, LmpParams, ModelParams, Params, PretrainParams, SweepParams, SyntheticParams,
                     TicketParams, TrainParams, TransferParams, load_params)
from ..base.errors import ConfigError
from .typed import from_dict, parse_number, to_dict

__all__ = ["METHODS", "PRETRAIN_KINDS", "REGIMES", "TIERS", "AttackParams", "ConfigError", "DataParams", "EvalParams",
           "Experiment", "ImpParams", "LmpParams", "ModelParams", "Params", "PretrainParams", "SweepParams",
           "SyntheticParams", "TicketParams", "TrainParams", "TransferParams", "from_dict", "load_params",
           "parse_number", "to_dict"]
