-- The Origin CA certificate issued to a workspace's agent (its id at the
-- authority), revoked when the workspace is released.
ALTER TABLE workspaces ADD COLUMN origin_certificate TEXT;
