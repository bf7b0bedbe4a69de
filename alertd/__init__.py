"""alertd: the alert hub a platform team owns."""

__version__ = "0.1.0"
