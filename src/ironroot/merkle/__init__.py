"""ironroot.merkle"""
__all__: list[str] = []
