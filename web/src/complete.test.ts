import { describe, expect, it } from "vitest";
import { complete, spell, suggest, tokenAt } from "./complete";

const NAMES = ["t-shirt_top", "trouser", "sandal", "sneaker", "overall", "243-bull_mastiff", "001-goldfish"];

describe("set names offered while typing an expression", () => {
  it("finds the name being typed after an operator, not after a name or inside a number", () => {
    expect(tokenAt("sandal - ov", 11)).toEqual({ start: 9, end: 11, prefix: "ov" });
    expect(tokenAt("", 0)).toEqual({ start: 0, end: 0, prefix: "" });
    expect(tokenAt("2*(sn", 5)?.prefix).toBe("sn");
    expect(tokenAt("sandal ov", 9)).toBeNull();
    expect(tokenAt("0.5", 3)).toBeNull();
  });

  it("treats '-' as the minus operator outside quotes and as part of a quoted name inside", () => {
    expect(tokenAt("sandal-ov", 9)?.prefix).toBe("ov");
    const quoted = tokenAt("'t-sh", 5)!;
    expect(quoted.prefix).toBe("t-sh");
    expect(complete("'t-sh", quoted, "t-shirt_top").text).toBe("'t-shirt_top'");
  });

  it("spells names as the server's parser reads them", () => {
    expect(spell("sandal")).toBe("sandal");
    expect(spell("243-bull_mastiff")).toBe("bull_mastiff");
    expect(spell("t-shirt_top")).toBe("'t-shirt_top'");
  });

  it("ranks names that start with the prefix before names that contain it", () => {
    expect(suggest(NAMES, "s")).toEqual(["sandal", "sneaker", "t-shirt_top", "trouser", "243-bull_mastiff", "001-goldfish"]);
    expect(suggest(NAMES, "gold")).toEqual(["001-goldfish"]);
    expect(suggest(NAMES, "bull")).toEqual(["243-bull_mastiff"]);
    expect(suggest(NAMES, "")).toHaveLength(NAMES.length);
  });

  it("replaces the whole token and puts the cursor after the name", () => {
    const text = "sandal - ovXX + trouser";
    const token = tokenAt(text, 11)!;
    expect(complete(text, token, "overall")).toEqual({ text: "sandal - overall + trouser", cursor: 16 });
  });
});
