// The version every tool prints for --version.

public let toolVersion = "0.1.0"
