from sa2va.errors import Sa2VAError, Sa2VAInputError, Sa2VAConfigError, Sa2VACheckpointError
