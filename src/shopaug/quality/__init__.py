"""Quality filters for synthetic rows."""
