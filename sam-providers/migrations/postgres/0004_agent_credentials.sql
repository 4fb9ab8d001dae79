-- The id (jti) of the callback credential the current server's agent was
-- given: the only one accepted from it; cleared with the server.
ALTER TABLE workspaces ADD COLUMN agent_credential TEXT;
