"""seq2seq-nmt's Hydra sweeper on Optuna's current API (``hydra/sweeper: nmt_optuna``)."""
