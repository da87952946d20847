/** The UI texts of the account area and the annotations (merged into dom.js's TEXT). */
export default {
  zh: {
    signIn: '登录', register: '注册', myKeys: '我的密钥', signOut: '退出',
    annotations: '标注', annPoint: '点', annLineString: '线', annPolygon: '面',
    annTitle: '标题', annNote: '备注', save: '保存', cancel: '取消', annEdit: '编辑',
    annShare: '分享', annUnshare: '取消分享', annDelete: '删除', annLink: '分享链接',
    annSaved: '标注已保存', annDrawHint: '在地图上绘制：单击添加节点，双击结束',
    annAnon: '登录后可在地图上标注并保存', annSharedBy: '{owner} 分享的标注（只读）',
    annExport: '导出',
  },
  en: {
    signIn: 'Sign in', register: 'Register', myKeys: 'My keys', signOut: 'Sign out',
    annotations: 'Annotations', annPoint: 'Point', annLineString: 'Line',
    annPolygon: 'Polygon', annTitle: 'Title', annNote: 'Note', save: 'Save',
    cancel: 'Cancel', annEdit: 'Edit', annShare: 'Share', annUnshare: 'Unshare',
    annDelete: 'Delete', annLink: 'Share link', annSaved: 'Annotation saved',
    annDrawHint: 'Draw on the map: click to add points, double-click to finish',
    annAnon: 'Sign in to draw and keep annotations', annSharedBy: 'Shared by {owner} (read-only)',
    annExport: 'Export',
  },
};
