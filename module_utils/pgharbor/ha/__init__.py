"""High availability: the cluster's control plane as pgharbor configures and
reads it. etcd (the store Patroni keeps its leader lock in): its users,
roles and authentication, through etcd's own v3 JSON gateway."""
