#!/bin/sh
# /etc/letsencrypt/renewal-hooks/deploy/volli.sh — after each renewal, copy the certificates
# where coturn (user turnserver) and volli-signal (user volli) can read them, and restart
# both.  First run: certbot certonly --standalone -d turn.example.org -d signal.example.org
# (port 80 free for a moment), then run this hook once by hand with
# RENEWED_LINEAGE=/etc/letsencrypt/live/turn.example.org.
set -eu
for target in coturn:turnserver volli:volli; do
  dir="/etc/${target%%:*}/tls"
  owner="${target##*:}"
  install -d -m 0750 -o root -g "$owner" "$dir"
  install -m 0640 -o root -g "$owner" "$RENEWED_LINEAGE/fullchain.pem" "$dir/fullchain.pem"
  install -m 0640 -o root -g "$owner" "$RENEWED_LINEAGE/privkey.pem" "$dir/privkey.pem"
done
systemctl restart coturn volli-signal
