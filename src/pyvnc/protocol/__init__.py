"""The sans-I/O RFB protocol core: no asyncio, no sockets, no clock."""
