"""Frame sources: X11 (mss), a managed Xvfb, the demo scene, and frames pushed by a host program."""
