"""Small helpers every room uses: files replaced atomically, secrets held in memory for a moment,
the JSON settings files the roles write."""
