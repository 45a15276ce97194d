"""The firewall as the monitoring host sees it: the counters of pgharbor's
nftables table (roles/firewall), read with nft and written as metrics."""
