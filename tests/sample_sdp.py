"""A real aiortc offer, for tests that make pairing codes without a connection."""

SDP = (  # aiortc 1.16's offer for one data channel, as it comes
    "v=0\r\no=- 4005159414 4005159414 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\na=msid-semantic:WMS *\r\n"
    "m=application 50347 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 192.0.2.2\r\n"
    "a=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"
    "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 50347 typ host\r\n"
    "a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 fd00::2 47490 typ host\r\n"
    "a=candidate:7c5a 1 udp 16777215 203.0.113.1 49152 typ relay raddr 0.0.0.0 rport 9\r\n"
    "a=end-of-candidates\r\na=ice-ufrag:RyuX\r\na=ice-pwd:93z5HWvwbnfwiQor5yWnVA\r\n"
    "a=fingerprint:sha-256 92:EF:FC:87:B5:49:47:CE:E0:C7:40:D5:B8:1B:5D:62:1E:E7:96:79:3E:CF:"
    "E5:27:C5:84:CF:6F:D5:11:28:76\r\n"
    "a=fingerprint:sha-384 CC:EB:28:EB:AF:A6:AB:C3:8E:8C:59:43:E6:2B:76:E7:55:B5:F4:1F:24:6F:"
    "60:9B:A4:03:82:BF:94:22:C4:6F:4B:5B:C8:EE:01:D5:70:0D:C6:66:27:5C:16:FB:38:A6\r\n"
    "a=setup:actpass\r\n"
)
