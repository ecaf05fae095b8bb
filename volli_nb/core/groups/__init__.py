"""Groups: signed, hash-chained membership records, and how group traffic names them."""
