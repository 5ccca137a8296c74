"""The detector: pure computation, no broker code.

>>> from workers.detection import Detector, DetectorSettings
>>> det = Detector(DetectorSettings(periods=()))
>>> state = det.new_state()
>>> results = [det.update(state, 60.0 * i, 10.0 + (i % 3)) for i in range(100)]
>>> det.update(state, 6000.0, 500.0).anomaly
True
"""
from harewatch.workers.detection.detector import Detector, DetectorSettings, PointResult, SeriesState

__all__ = ["Detector", "DetectorSettings", "PointResult", "SeriesState"]
