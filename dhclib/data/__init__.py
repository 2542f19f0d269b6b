"""The datasets, read from a data root in torchvision's layout (never written into): MNIST's IDX files
(``idx``), the Vision Mixture's and CIFAR's formats (``vision``), and generated stand-ins for the tests (``fake``).
"""
