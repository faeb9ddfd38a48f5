"""What the API and the activities share: settings, database, ids, storage, events."""
