"""ironroot.transparency"""
__all__: list[str] = []
