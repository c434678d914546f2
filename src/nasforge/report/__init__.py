"""Reporting: progress lines now; plots and HTML reports belong here too."""
