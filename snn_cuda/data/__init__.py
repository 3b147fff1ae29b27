"""Neuromorphic data: exact readers and writers for N-MNIST (``.bin``) and DVS128 Gesture (AEDAT 3.1, label
CSVs, trial lists), framing of events into ``[T, 2, H, W]`` tensors, datasets with seeded splits, an event-camera
emulator and the two embedded synthetic sets generated through the real formats, and MNIST inputs for snn-iir.

Events are one numpy structured array of :data:`EVENT_DTYPE` (``x, y`` pixels, ``t`` microseconds int64, ``p``
0 = OFF / 1 = ON) whatever the source. ``python -m snn_cuda.data.render`` draws samples as PNG.
"""

from .aedat import (
    LABEL_DTYPE,
    aedat_packet,
    polarity_packets,
    read_aedat,
    read_labels,
    read_trial_list,
    write_aedat,
    write_labels,
    write_trial_list,
)
from .emulator import EventCameraEmulator, contrast_thresholds, log_intensity, noise_events
from .events import EVENT_DTYPE, check_events, make_events
from .framing import Framing, events_to_frames
from .gesture import CLASSES as GESTURE_CLASSES
from .gesture import DVSGesture, cache_trial
from .mnist import MNIST, copy_along_time, load_mnist, poisson_encode, read_idx
from .nmnist import NMNIST, list_nmnist, read_nmnist, write_nmnist
from .splits import split_indices
from .synthetic import data_root, synthetic_gesture, synthetic_nmnist

__all__ = [
    "DVSGesture", "EVENT_DTYPE", "EventCameraEmulator", "Framing", "GESTURE_CLASSES", "LABEL_DTYPE", "MNIST",
    "NMNIST", "aedat_packet", "cache_trial", "check_events", "contrast_thresholds", "copy_along_time", "data_root",
    "events_to_frames", "list_nmnist", "load_mnist", "log_intensity", "make_events", "noise_events",
    "poisson_encode", "polarity_packets", "read_aedat", "read_idx", "read_labels", "read_nmnist",
    "read_trial_list", "split_indices", "synthetic_gesture", "synthetic_nmnist", "write_aedat", "write_labels",
    "write_nmnist", "write_trial_list",
]  # fmt: skip
