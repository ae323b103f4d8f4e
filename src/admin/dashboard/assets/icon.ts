/** The dashboard's icon: a lever on its fulcrum. */
export const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#2f6fe4"/>
<path d="M5.5 13.2 26.5 9.2" stroke="#fff" stroke-width="2.6" stroke-linecap="round"/>
<path d="M16 13.6 22.2 24.5H9.8z" fill="#fff"/>
</svg>
`;
