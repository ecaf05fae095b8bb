"""WebSocket signaling: rooms, presence, and relay of offers and answers.

``state`` and ``wire`` are pure; ``server`` and ``client`` do the I/O on the
``websockets`` library.  Peer ids are identity fingerprints, and registering
one requires signing the server's challenge with that identity key.
"""
