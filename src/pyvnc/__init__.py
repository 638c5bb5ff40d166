"""pyvnc: a VNC (RFB) server on asyncio."""
