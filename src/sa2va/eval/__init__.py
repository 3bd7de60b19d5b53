"""Benchmark metrics of Sa2VA, computed the way the reference evaluation scripts compute them.

See :mod:`sa2va.eval.metrics`: cIoU/gIoU (RefCOCO family), J, F and J&F (Ref-DAVIS17, MeViS, Ref-YTVOS), A and R
(ReVOS) and mIoU, recall and mask AP (grounded conversation generation). Pure numpy; no model or GPU needed.
"""
