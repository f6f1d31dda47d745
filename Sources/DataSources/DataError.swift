// The one error type of DataSources: an input file that is missing, malformed or mismatched.

import TensorCore

/// A problem with an input data file, located by file and, when known, place in it.
public struct DataError: DiagnosticError, CustomStringConvertible {
    public let input: String
    public let place: String
    public let problem: String
    public let kind: FailureKind

    public init(_ input: String, _ problem: String, at place: String = "", kind: FailureKind = .badData) {
        self.input = input
        self.place = place
        self.problem = problem
        self.kind = kind
    }

    public var location: String { place.isEmpty ? input : "\(input): \(place)" }
    public var description: String { "\(location): \(problem)" }
}
