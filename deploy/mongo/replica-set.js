/* global rs, db, quit */
// MongoDB's health check in docker-compose.yml (mongosh --quiet --file): initiates the single-node
// replica set rs0 the first time (the seeds' design runs MongoDB as a replica set; posts-service's
// store needs no multi-document transaction), then reports healthy only once this node is the
// writable primary.
try {
  rs.status();
} catch (error) {
  if (error.codeName !== 'NotYetInitialized') throw error;
  rs.initiate({ _id: 'rs0', members: [{ _id: 0, host: 'mongo:27017' }] });
}
if (!db.hello().isWritablePrimary) quit(1);
