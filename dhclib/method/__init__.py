"""The method: DHP Softmax and its matched baseline, the networks, the consolidation regularisers and their
importance estimates, the sequential training protocol and the metrics (docs/method.md).
"""
