"""The operator's side: the fleet store, ingest, ACL, rollouts, update delivery, the edgelens-fleet command and its dev broker."""
