"""The pipeline: run = check data -> train -> evaluate -> report.

Each step reads and writes the run folder, so a step can also be run alone
(``seglab train``, ``seglab evaluate RUN``). One module per command.
"""

from seglab.pipeline.common import (
    EVALUATIONS_DIR,
    PER_IMAGE_FILE,
    TRAIN_SUMMARY_FILE,
    RunResult,
    check_data_or_stop,
    check_data_report,
    config_path_of,
    model_folder_of,
)
from seglab.pipeline.evaluation import evaluate_run
from seglab.pipeline.prediction import predict
from seglab.pipeline.training import resume, run, train

__all__ = [
    "EVALUATIONS_DIR",
    "PER_IMAGE_FILE",
    "TRAIN_SUMMARY_FILE",
    "RunResult",
    "check_data_or_stop",
    "check_data_report",
    "config_path_of",
    "evaluate_run",
    "model_folder_of",
    "predict",
    "resume",
    "run",
    "train",
]
