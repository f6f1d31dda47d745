// The tools' entry point: ArgumentParser's parsing, with a usage error reported as every other
// error is, on one line (`tool: problem (see tool --help)`) with status 64, rather than
// ArgumentParser's three lines of "Error:", usage and a hint.

import ArgumentParser
import Foundation

extension ParsableCommand {
    /// Parses the command line and runs the tool; `--help` and `--version` print to stdout.
    public static func mainAsTool(_ given: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        let name = configuration.commandName ?? "\(Self.self)".lowercased()
        let arguments = separatingShortValues(given, help: helpMessage())
        func fail(_ error: Error) -> Never {
            guard exitCode(for: error) != .success else {
                print(fullMessage(for: error))  // --help, --version
                Glibc.exit(ExitStatus.ok)
            }
            // ArgumentParser runs validate() before it reports an unknown option, so `normalize
            // --bogus` said "choose one of --scale, …": name the unknown option first.
            let problem = unknownOption(in: arguments, help: helpMessage()).map { "unknown option '\($0)'" }
                ?? usageProblem(message(for: error), arguments: arguments)
            writeStandardError("\(name): \(problem) (see \(name) --help)\n")
            Glibc.exit(ExitStatus.usage)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()  // a tool's run() ends in Tool.run, which exits with its status
            Glibc.exit(ExitStatus.ok)
        } catch {
            fail(error)
        }
    }
}

/// ArgumentParser's message as one line. A negative number after an option reads to it as
/// another option ("Missing value for '--batch <batch>'"): say what was given instead.
func usageProblem(_ message: String, arguments: [String]) -> String {
    var text = message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    if text.hasPrefix("Error: ") { text.removeFirst("Error: ".count) }
    if text.hasPrefix("Missing value for '"), let end = text.dropFirst(19).firstIndex(where: { $0 == " " || $0 == "'" }) {
        let option = String(text[text.index(text.startIndex, offsetBy: 19)..<end])
        if let i = arguments.firstIndex(of: option), i + 1 < arguments.count {
            let next = arguments[i + 1]
            if next.count > 1, next.hasPrefix("-"), Double(next) != nil { return "\(option) \(next): a negative number is not a value of \(option)" }
        }
    }
    // "Unknown option" → "unknown option", as the tools' own messages read.
    if let first = text.first, first.isUppercase, text.dropFirst().first?.isLowercase == true { text = first.lowercased() + text.dropFirst() }
    return text
}

/// The arguments with a value attached to a short option split off, as getopt(3) reads them:
/// `-n5` is `-n 5`, `-omodel` is `-o model`. Only for the short options that `help` lists with a
/// value (`-n <count>`, `-o, --output <file>`), before any `--`, and not for a word that is a
/// number (`-1e3` stays a negative value).
func separatingShortValues(_ arguments: [String], help: String) -> [String] {
    var taking = Set<Character>()
    for line in help.split(separator: "\n") {
        let t = line.drop { $0 == " " }
        guard t.count > 3, t.first == "-", let letter = t.dropFirst().first, letter.isLetter else { continue }
        var rest = t.dropFirst(2)
        if rest.hasPrefix(", --") { rest = rest.dropFirst(4).drop { $0.isLetter || $0.isNumber || $0 == "-" } }
        if rest.hasPrefix(" <") { taking.insert(letter) }
    }
    var out: [String] = []
    var optionsEnded = false
    for a in arguments {
        if a == "--" { optionsEnded = true }
        let chars = Array(a)
        if !optionsEnded, chars.count > 2, chars[0] == "-", taking.contains(chars[1]), Double(a) == nil {
            out += [String(chars[0...1]), String(chars[2...])]
        } else {
            out.append(a)
        }
    }
    return out
}

/// The first argument that looks like an option but that `help` does not list, or nil.
/// Arguments after `--`, and values that follow an option, cannot be told apart from operands
/// here: only words that begin with `--` (name up to `=`) or a single-letter `-x` are checked.
func unknownOption(in arguments: [String], help: String) -> String? {
    var known = Set<String>()
    var word = ""
    for c in help + " " {
        if c == "-" || c.isLetter || c.isNumber {
            word.append(c)
        } else {
            if word.hasPrefix("-") { known.insert(word) }
            word = ""
        }
    }
    for a in arguments {
        if a == "--" { break }
        let name = a.hasPrefix("--") ? String(a.prefix { $0 != "=" }) : a
        let isOption = (name.hasPrefix("--") && name.count > 2) || (name.count == 2 && name.hasPrefix("-") && name.last!.isLetter)
        if isOption && !known.contains(name) { return name }
    }
    return nil
}
