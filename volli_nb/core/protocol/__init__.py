"""core/protocol"""
