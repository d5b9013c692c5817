"""prodcat.models"""
