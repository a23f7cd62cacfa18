"""ironroot.cose"""
__all__: list[str] = []
